"""Keys the ingest function protects data with, all held under KMS:

- the city's pseudonymisation key: one 256-bit secret for the whole city (so tokens join across
  datasets), stored only as a KMS ciphertext under the platform key and decrypted in memory;
- each dataset's data key for `encrypt` columns: a KMS data key under the owner department's key,
  with the dataset id as encryption context, stored as ciphertext on the dataset's catalog item.

Both are created on first use with a conditional write, so concurrent first uses agree on one key.
"""

from __future__ import annotations

import base64
from typing import Any

from functions.core import aws
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import InvalidRequest

_SECRET_KEY = {"pk": "SECRET", "sk": "PSEUDONYMISATION"}


class KeyService(DynamoTable):
    kms = aws.LazyClient("kms")

    def __init__(self, table_name: str, platform_key: str, client: Any = None, kms: Any = None) -> None:
        super().__init__(table_name, client)
        self._platform_key = platform_key
        self._kms = kms
        self._cache: dict[str, bytes] = {}

    def pseudonymisation_key(self) -> bytes:
        return self._stored_key("pseudonymisation", _SECRET_KEY, self._platform_key, {"purpose": "pseudonymisation"})

    def dataset_key(self, dataset_id: str, department_key: str | None) -> bytes:
        if not department_key:
            raise InvalidRequest("The owner department has no KMS key: add it to the `departments` of cdk.json and deploy")
        key = {"pk": f"DATASET#{dataset_id}", "sk": "DATA_KEY"}
        return self._stored_key(f"dataset:{dataset_id}", key, department_key, {"dataset": dataset_id})

    def _stored_key(self, name: str, item_key: dict[str, str], kms_key: str, context: dict[str, str]) -> bytes:
        if name in self._cache:
            return self._cache[name]
        response = self.client.get_item(TableName=self._table, Key=to_item(item_key), ConsistentRead=True)
        if "Item" not in response:
            generated = self.kms.generate_data_key(KeyId=kms_key, KeySpec="AES_256", EncryptionContext=context)
            try:
                self.client.put_item(
                    TableName=self._table,
                    Item=to_item(dict(item_key, ciphertext=base64.b64encode(generated["CiphertextBlob"]).decode())),
                    ConditionExpression="attribute_not_exists(pk)",
                )
                self._cache[name] = generated["Plaintext"]
                return self._cache[name]
            except Exception as error:
                if not is_conditional_failure(error):
                    raise
                response = self.client.get_item(TableName=self._table, Key=to_item(item_key), ConsistentRead=True)
        ciphertext = base64.b64decode(from_item(response["Item"])["ciphertext"])
        self._cache[name] = self.kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)["Plaintext"]
        return self._cache[name]
