"""The one exception type users see: what happened, what was expected, how to fix it."""


class CorollaError(Exception):
    """An error caused by user input or the environment, shown as one clear line by the CLI.

    Example:
        raise CorollaError(f"No manifest.json in {data_dir}. Run `corolla prepare` first. Received: data_dir={data_dir!r}")
    """
