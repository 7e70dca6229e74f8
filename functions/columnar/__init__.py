"""Columnar data (Arrow) of datasets: the one mapping of declared column types to Arrow types and
the one conversion of read values to them. Only the functions that handle data files import it."""
