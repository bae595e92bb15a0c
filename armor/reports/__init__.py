"""Pure writers: JSON, tables (and later plots, HTML) from result dicts."""
from .json import read_json, write_json
from .table import accuracy_rows, format_table

__all__ = ["accuracy_rows", "format_table", "read_json", "write_json"]
