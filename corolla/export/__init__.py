from corolla.export.card import export_summary, parity_table
from corolla.export.parity import check_parity
from corolla.export.saved_model import FORMATS, export

__all__ = ["FORMATS", "check_parity", "export", "export_summary", "parity_table"]


from corolla._api import make_callable  # noqa: E402

make_callable(__name__, export)  # `corolla.export(...)` even once the module is imported
