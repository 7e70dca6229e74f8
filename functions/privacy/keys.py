"""Keys personal data is protected with, all held under KMS and stored only as KMS ciphertexts:

- each department's pseudonymisation key (its own token space), a KMS data key under that
  department's KMS key: nothing another department uploads can produce a matching token;
- each dataset's data key, for `encrypt` columns and the sealed vault of its pseudonyms, a KMS data
  key under the owner department's key with the dataset and the department as encryption context;
  both decrypted only by a session acting for that department (functions.core.scoped);
- the platform secret, under the platform key, from which per-purpose keys are derived: masking
  (one per grant) and linkage (one per linkage grant and identifier kind).

Each is created on first use with a conditional write, so concurrent first uses agree on one key.
"""

from __future__ import annotations

import base64
from typing import Any

from functions.core import aws
from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item
from functions.core.scoped import DepartmentScopes
from functions.identity.directory import DepartmentKeys
from functions.privacy.sealing import derived_key

_PLATFORM_SECRET = {"pk": "SECRET", "sk": "PLATFORM"}


class KeyService(DynamoTable):
    kms = aws.LazyClient("kms")

    def __init__(
        self,
        table_name: str,
        platform_key: str,
        scopes: DepartmentScopes,
        department_keys: DepartmentKeys,
        client: Any = None,
        kms: Any = None,
    ) -> None:
        super().__init__(table_name, client)
        self._platform_key = platform_key
        self._scopes = scopes
        self._department_keys = department_keys
        self._kms = kms
        self._cache: dict[str, bytes] = {}

    def pseudonymisation_key(self, department: str, dataset_id: str | None = None) -> bytes:
        """The department's own token space, decrypted only by a session acting for that department
        (serving another department's request: one for `dataset_id`, which it may read)."""
        key = {"pk": "SECRET", "sk": f"PSEUDONYMISATION#{department}"}
        context = {"purpose": "pseudonymisation", "department": department}
        return self._stored_key(f"pseudonyms:{department}", key, department, context, dataset_id)

    def dataset_key(self, dataset_id: str, department: str) -> bytes:
        """A dataset's data key, under its owner's KMS key, bound to the dataset and the owner."""
        key = {"pk": f"DATASET#{dataset_id}", "sk": "DATA_KEY"}
        return self._stored_key(
            f"dataset:{dataset_id}", key, department, {"dataset": dataset_id, "department": department}, dataset_id
        )

    def mask_key(self, grant_id: str) -> bytes:
        """One grant's own token space (masked columns, and every pseudonymised column it serves):
        stable within the grant, useless outside it, not recomputable by the grantee."""
        return derived_key(self._platform_secret(), "grant-mask", grant_id)

    def linkage_key(self, grant_id: str, kind: str) -> bytes:
        """The token space of one linkage grant for one kind of identifier: both departments' data
        re-keyed into it join under that grant and under no other, and not once it is revoked."""
        return derived_key(self._platform_secret(), "linkage", grant_id, kind)

    def _platform_secret(self) -> bytes:
        return self._stored_key("platform", _PLATFORM_SECRET, None, {"purpose": "platform-derivation"})

    def _stored_key(
        self, name: str, item_key: dict[str, str], department: str | None, context: dict[str, str], dataset_id: str | None = None
    ) -> bytes:
        """A data key stored as KMS ciphertext: under `department`'s key, used by a session acting for
        it (None: under the platform key, by the function's own role)."""
        if name in self._cache:
            return self._cache[name]
        kms = self.kms if department is None else self._scopes.kms(department, dataset_id)
        kms_key = self._platform_key if department is None else self._department_keys.key_of(department)
        response = self.client.get_item(TableName=self._table, Key=to_item(item_key), ConsistentRead=True)
        if "Item" not in response:
            generated = kms.generate_data_key(KeyId=kms_key, KeySpec="AES_256", EncryptionContext=context)
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
        self._cache[name] = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)["Plaintext"]
        return self._cache[name]
