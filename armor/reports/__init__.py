"""Renderers: tables, plots, sweep files and the HTML report, made from :mod:`armor.results` records only."""
from .table import accuracy_rows, format_table

__all__ = ["accuracy_rows", "format_table"]
