"""Keys personal data is protected with, all held under KMS and stored only as KMS ciphertexts:

- each department's pseudonymisation key (its own token space), a KMS data key under that
  department's KMS key: nothing another department uploads can produce a matching token;
- each dataset's data key, for `encrypt` columns and the sealed vault of its pseudonyms, a KMS data
  key under the owner department's key with the dataset id as encryption context;
- the platform secret, under the platform key, from which per-purpose keys are derived: masking
  (one per grant) and linkage (one per pair of departments and identifier kind).

Each is created on first use with a conditional write, so concurrent first uses agree on one key.
"""

from __future__ import annotations

import base64
from typing import Any

from functions.core import aws
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.errors import InvalidRequest
from functions.core.sealing import derived_key

_PLATFORM_SECRET = {"pk": "SECRET", "sk": "PLATFORM"}


class KeyService(DynamoTable):
    kms = aws.LazyClient("kms")

    def __init__(self, table_name: str, platform_key: str, client: Any = None, kms: Any = None) -> None:
        super().__init__(table_name, client)
        self._platform_key = platform_key
        self._kms = kms
        self._cache: dict[str, bytes] = {}

    def pseudonymisation_key(self, department: str, department_key: str | None) -> bytes:
        """The department's own token space."""
        key = {"pk": "SECRET", "sk": f"PSEUDONYMISATION#{department}"}
        context = {"purpose": "pseudonymisation", "department": department}
        return self._stored_key(f"pseudonyms:{department}", key, _required(department_key), context)

    def dataset_key(self, dataset_id: str, department_key: str | None) -> bytes:
        key = {"pk": f"DATASET#{dataset_id}", "sk": "DATA_KEY"}
        return self._stored_key(f"dataset:{dataset_id}", key, _required(department_key), {"dataset": dataset_id})

    def mask_key(self, grant_id: str) -> bytes:
        """Masking tokens of one grant: stable within it, useless outside it, not recomputable by the grantee."""
        return derived_key(self._platform_secret(), "grant-mask", grant_id)

    def linkage_key(self, first: str, second: str, kind: str) -> bytes:
        """The one token space two departments share for one kind of identifier under a linkage grant."""
        low, high = sorted((first, second))
        return derived_key(self._platform_secret(), "linkage", low, high, kind)

    def _platform_secret(self) -> bytes:
        return self._stored_key("platform", _PLATFORM_SECRET, self._platform_key, {"purpose": "platform-derivation"})

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


def _required(department_key: str | None) -> str:
    if not department_key:
        raise InvalidRequest("The owner department has no KMS key: add it to the `departments` of cdk.json and deploy")
    return department_key
