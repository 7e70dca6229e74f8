"""Ingestion: from a department's file or records to a validated, protected, versioned dataset.

Only the ingest function imports pyarrow (through functions.ingest.pipeline and below); the API
function imports the models and the upload service, which do not.
"""
