"""A studio project: ordinary corolla folders plus one small project.json.

    WORKDIR/NAME/project.json     linked sources, class renames/removals, label overrides (+ undo)
    WORKDIR/NAME/pictures/CLASS/  pictures uploaded in the page (the studio's own copies)
    WORKDIR/NAME/items.csv        `path,label` of every picture, written before each prepare
    WORKDIR/NAME/overrides.csv    `key,label` relabels/exclusions, read by `prepare --overrides`
    WORKDIR/NAME/data/            `corolla prepare` output        WORKDIR/NAME/runs/NNN/  `corolla train` runs

The user's own folders (linked with --root) are only ever read: renaming or removing a class and
relabelling or excluding a picture are records in project.json, applied when items.csv and
overrides.csv are written, and each can be undone.

Example:
    project = Project.create("work", "flowers")
    project.add_class("roses"); project.save_upload("roses", "a.jpg", data)
    project.write_prepare_inputs()   # then: corolla prepare work/flowers/items.csv --overrides …
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pathlib
import re
import time

from corolla.data.storage import write_text
from corolla.studio.security import Refused, check_class_name

PROJECT_FILE = "project.json"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Project:
    def __init__(self, folder: pathlib.Path):
        self.folder = pathlib.Path(folder)
        self.name = self.folder.name
        self.state = json.loads((self.folder / PROJECT_FILE).read_text(encoding="utf-8"))

    # --- the folders ------------------------------------------------------------------------
    pictures = property(lambda self: self.folder / "pictures")
    data_dir = property(lambda self: self.folder / "data")
    runs_dir = property(lambda self: self.folder / "runs")
    items_csv = property(lambda self: self.folder / "items.csv")
    overrides_csv = property(lambda self: self.folder / "overrides.csv")

    @classmethod
    def create(cls, workdir: str | os.PathLike, name: str) -> "Project":
        if not NAME_PATTERN.match(name or ""):
            raise Refused(f"A project name is letters, digits, '_', '-' or '.', starting with a letter or digit, at most 64. Received: name={name!r}")
        folder = pathlib.Path(workdir) / name
        if folder.exists():
            raise Refused(f"There is already a project {name!r} in {workdir}.", status=409)
        (folder / "pictures").mkdir(parents=True)
        state = {"name": name, "created": time.time(), "sources": [], "class_order": [], "class_map": {}, "overrides": {}, "undo": []}
        write_text(folder / PROJECT_FILE, json.dumps(state, indent=2) + "\n")
        return cls(folder)

    def save(self) -> None:
        write_text(self.folder / PROJECT_FILE, json.dumps(self.state, indent=2, ensure_ascii=False) + "\n")

    # --- classes -----------------------------------------------------------------------------
    def classes(self) -> list[str]:
        """Class names as the page shows them: upload folders and linked sources' classes, renamed, minus removed."""
        names = list(self.state["class_order"])
        for folder in sorted(self.pictures.iterdir()) if self.pictures.is_dir() else []:
            if folder.is_dir() and folder.name not in names:
                names.append(folder.name)
        for source in self.state["sources"]:
            names += [name for name in _source_classes(source) if name not in names]
        shown = []
        for name in names:
            mapped = self._mapped(name)
            if mapped and mapped not in shown:
                shown.append(mapped)
        return shown

    def _mapped(self, name: str) -> str | None:
        seen = set()
        while name in self.state["class_map"] and name not in seen:
            seen.add(name)
            name = self.state["class_map"][name]
            if name is None:
                return None
        return name

    def add_class(self, name: str) -> str:
        name = check_class_name(name, self.classes())
        (self.pictures / name).mkdir(parents=True, exist_ok=True)
        self.state["class_map"].pop(name, None)  # a removed class of that name comes back …
        for original in self.state.setdefault("removed", {}).pop(name, []):  # … with every folder it was made of (renamed ones too)
            if original != name:
                self.state["class_map"][original] = name
        if name not in self.state["class_order"]:
            self.state["class_order"].append(name)
        self.save()
        return name

    def rename_class(self, old: str, new: str) -> str:
        self._known(old)
        new = check_class_name(new, [name for name in self.classes() if name != old])
        for original in self._originals(old):
            self.state["class_map"][original] = new
        self.state["class_order"] = [new if name == old else name for name in self.state["class_order"]]
        overrides = self.state["overrides"]
        for key, label in overrides.items():  # pictures moved to the class follow it (else prepare would make `old` again)
            if label == old:
                overrides[key] = new
        self.save()
        return new

    def remove_class(self, name: str) -> None:
        """The class and its pictures leave the data (nothing is deleted); add it again to undo."""
        self._known(name)
        originals = self._originals(name)
        for original in originals:
            self.state["class_map"][original] = None
        self.state["class_map"][name] = None  # also when it is only a name (a renamed class has no folder of its own)
        self.state.setdefault("removed", {})[name] = sorted(set(originals) - {name})
        self.save()

    def _known(self, name: str) -> None:
        if name not in self.classes():
            raise Refused(f"There is no class {name!r} in {self.name}. Classes: {', '.join(self.classes()) or 'none yet'}.", status=404)

    def _originals(self, shown: str) -> list[str]:
        everything = {folder.name for folder in self.pictures.iterdir() if folder.is_dir()} | set(self.state["class_map"])
        for source in self.state["sources"]:
            everything |= set(_source_classes(source))
        return [name for name in everything if self._mapped(name) == shown]

    # --- pictures ----------------------------------------------------------------------------
    def save_upload(self, class_name: str, filename: str, data: bytes) -> pathlib.Path:
        """Store an (already checked) upload under pictures/, named by its content: the same bytes twice are one file."""
        self._known(class_name)
        folder = self.pictures / self._upload_folder(class_name)
        folder.mkdir(parents=True, exist_ok=True)
        suffix = pathlib.Path(filename).suffix.lower()
        suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ""
        path = folder / (hashlib.sha256(data).hexdigest()[:16] + suffix)
        if not path.exists():
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path

    def _upload_folder(self, shown: str) -> str:
        """The pictures/ folder new uploads of class `shown` go to (the folder of that name, or the one renamed to it)."""
        candidates = [name for name in self._originals(shown) if (self.pictures / name).is_dir()]
        return shown if shown in candidates or not candidates else candidates[0]

    def link_source(self, folder: pathlib.Path) -> None:
        path = str(folder)
        if path in self.state["sources"]:
            raise Refused(f"{path} is already part of {self.name}.", status=409)
        _source_classes(path)  # a folder without class sub-folders fails here, with the reason
        self.state["sources"].append(path)
        self.save()

    def items(self) -> list[tuple[str, str]]:
        """(absolute path, class) of every picture in the data, renames and class removals applied."""
        found = []
        for folder in sorted(self.pictures.iterdir()) if self.pictures.is_dir() else []:
            if folder.is_dir():
                found += [(entry.path, folder.name) for entry in sorted(os.scandir(folder), key=lambda e: e.name) if entry.is_file() and not entry.name.startswith(".")]
        for source in self.state["sources"]:
            found += _source_items(source)
        return [(path, mapped) for path, label in found if (mapped := self._mapped(label))]

    # --- label overrides ---------------------------------------------------------------------
    def set_override(self, key: str, label: str | None) -> None:
        """Relabel the picture `key` (a path from items.csv) to `label`, or exclude it with None."""
        if label is not None and label not in self.classes():
            raise Refused(f"There is no class {label!r} to move the picture to. Classes: {', '.join(self.classes())}.")
        overrides = self.state["overrides"]
        self.state["undo"].append({"key": key, "before": overrides.get(key, False)})
        overrides[key] = "" if label is None else label
        self.save()

    def undo_override(self) -> dict | None:
        if not self.state["undo"]:
            return None
        last = self.state["undo"].pop()
        if last["before"] is False:
            self.state["overrides"].pop(last["key"], None)
        else:
            self.state["overrides"][last["key"]] = last["before"]
        self.save()
        return last

    def write_prepare_inputs(self) -> None:
        """items.csv and overrides.csv, which `corolla prepare` reads (see `prepare_command`)."""
        items = io.StringIO()
        writer = csv.writer(items)
        writer.writerow(["path", "label"])
        writer.writerows(self.items())
        write_text(self.items_csv, items.getvalue())
        overrides = io.StringIO()
        writer = csv.writer(overrides)
        writer.writerow(["key", "label"])
        classes = set(self.classes())  # a picture moved to a class removed since leaves with that class
        writer.writerows(sorted((key, label if label in classes else "") for key, label in self.state["overrides"].items()))
        write_text(self.overrides_csv, overrides.getvalue())

    def prepare_arguments(self, *, image_size: int = 96) -> list[str]:
        return ["prepare", str(self.items_csv), "--out", str(self.data_dir), "--overrides", str(self.overrides_csv), "--image-size", str(image_size), "--overwrite"]

    def runs(self) -> list[pathlib.Path]:
        """Every run folder under runs/, the CLI's too (any folder holding a config.yaml)."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(folder for folder in self.runs_dir.iterdir() if (folder / "config.yaml").is_file() or (folder / "studio_train.json").is_file())

    def next_run_dir(self) -> pathlib.Path:
        numbers = [int(folder.name) for folder in self.runs_dir.iterdir() if folder.name.isdigit()] if self.runs_dir.is_dir() else []
        return self.runs_dir / f"{max(numbers, default=0) + 1:03d}"


def list_projects(workdir: str | os.PathLike) -> list[Project]:
    root = pathlib.Path(workdir)
    return [Project(folder) for folder in sorted(root.iterdir()) if (folder / PROJECT_FILE).is_file()] if root.is_dir() else []


def open_project(workdir: str | os.PathLike, name: str) -> Project:
    folder = pathlib.Path(workdir) / name
    if not NAME_PATTERN.match(name or "") or not (folder / PROJECT_FILE).is_file():
        raise Refused(f"There is no project {name!r} in {workdir}.", status=404)
    return Project(folder)


def _source_classes(path: str) -> list[str]:
    return sorted({label for _, label in _source_items(path)}) if path.lower().endswith(".csv") else _folder_classes(path)


def _folder_classes(path: str) -> list[str]:
    from corolla.data.sources import resolve_source

    return resolve_source(path, kind="images").classes


def _source_items(path: str) -> list[tuple[str, str]]:
    """(absolute path, class) pairs of a linked folder or CSV, read as `prepare` reads them."""
    from corolla.data.sources import resolve_source

    source = resolve_source(path, kind="images")
    return [(os.path.abspath(item.path), source.classes[item.label]) for item in source.items]
