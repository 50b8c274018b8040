"""Remote paths (gs://, s3://…) go through tf.io.gfile; TensorFlow's in-memory ram:// filesystem stands in here."""

import tensorflow as tf

from corolla.data import storage
from corolla.data.manifest import Manifest
from corolla.data.pipeline import load


def test_remote_file_operations_round_trip():
    base = "ram://corolla-test/storage"
    storage.makedirs(base)
    storage.write_text(storage.join(base, "a.txt"), "héllo")
    assert storage.read_text(f"{base}/a.txt") == "héllo"
    assert storage.glob(f"{base}/*.txt") == [f"{base}/a.txt"]
    assert not [name for name in storage.listdir(base) if ".tmp-" in name]  # the temporary name was renamed away
    storage.rename(f"{base}/a.txt", f"{base}/b.txt")
    assert storage.listdir(base) == ["b.txt"]
    storage.rmtree(base)
    assert not storage.exists(base)


def test_prepared_data_is_read_from_a_remote_folder(prepared):
    remote = "ram://corolla-test/data"
    storage.makedirs(remote)
    manifest = Manifest.load(prepared)
    for split in manifest.splits:
        for path in manifest.shard_paths(split):
            tf.io.gfile.copy(path, storage.join(remote, path.rsplit("/", 1)[1]), overwrite=True)
    manifest.save(remote)
    loaded = Manifest.load(remote)
    assert loaded.shard_paths("train")[0].startswith("ram://corolla-test/data/train-00000-of-")
    assert storage.read_text(f"{remote}/labels.txt") == "blue\ngreen\nred\n"
    count = sum(int(labels.shape[0]) for _, labels in load(remote, "train", batch_size=16))
    assert count == manifest.count("train")
    storage.rmtree(remote)
