"""Each published version registered as a Glue table `<dataset>__v<n>` (Parquet, at its curated
prefix), so large derived datasets can run as Athena queries over exact versions. The tables are
the platform's own: departments get no Glue or Athena rights, so they cannot bypass grants; the
triggers function reads them only through the grant-restricted CTEs it writes around a query."""

from __future__ import annotations

from typing import Any

from functions.core import aws
from functions.ingest.models import DatasetVersion

_HIVE = {
    "string": "string",
    "large_string": "string",
    "bool": "boolean",
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "float": "float",
    "double": "double",
    "date32[day]": "date",
    "binary": "binary",  # a geometry's WKB (Athena: ST_GeomFromBinary)
}


def hive_type(arrow_type: str) -> str:
    if arrow_type.startswith("timestamp"):
        return "timestamp"
    return _HIVE.get(arrow_type, "string")


def version_table(dataset_id: str, version: int) -> str:
    return f"{dataset_id.replace('-', '_')}__v{version}"


class GlueTables:
    glue = aws.LazyClient("glue")

    def __init__(self, database: str, bucket: str, glue: Any = None) -> None:
        self._database = database
        self._bucket = bucket
        self._glue = glue

    def register(self, version: DatasetVersion) -> str:
        """Create (or, on a redelivery, overwrite) the version's table; returns its name."""
        name = version_table(version.dataset_id, version.version)
        prefix = version.files[0].rsplit("/", 1)[0] + "/"
        table = {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "classification": "parquet",
                "cityshare_dataset": version.dataset_id,
                "cityshare_version": str(version.version),
            },
            "StorageDescriptor": {
                "Columns": [{"Name": column, "Type": hive_type(kind)} for column, kind in version.output_schema.items()],
                "Location": f"s3://{self._bucket}/{prefix}",
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        }
        try:
            self.glue.create_table(DatabaseName=self._database, TableInput=table)
        except self.glue.exceptions.AlreadyExistsException:
            self.glue.update_table(DatabaseName=self._database, TableInput=table)
        return name
