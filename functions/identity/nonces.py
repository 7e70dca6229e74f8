"""Single use of request tokens: each `jti` is written once, conditionally, and remembered until it
expires, with the principal it was verified for. Only the authorizer's role may write this table
(infra/spec.py), so a record here attests a request the authorizer verified: the session broker
(functions/sharing/sessions.py) vends data sessions only against one."""

from __future__ import annotations

from functions.core.dynamo import DynamoTable, from_item, is_conditional_failure, to_item


class NonceStore(DynamoTable):
    def use_once(self, nonce: str, expires_at: int, now: int, principal: str = "") -> bool:
        """True the first time `nonce` is seen; False on every later call before it expires.

        DynamoDB's TTL deletes lazily (up to days later), so an expired record counts as absent.
        """
        try:
            self.client.put_item(
                TableName=self._table,
                Item=to_item({"nonce": nonce, "expires_at": expires_at, "principal": principal}),
                ConditionExpression="attribute_not_exists(nonce) OR expires_at < :now",
                ExpressionAttributeValues=to_item({":now": now}),
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True

    def holder(self, nonce: str, now: int) -> str | None:
        """The principal a token not yet expired was verified for (None: no such token, or expired)."""
        found = self.client.get_item(TableName=self._table, Key=to_item({"nonce": nonce}), ConsistentRead=True).get("Item")
        if found is None:
            return None
        record = from_item(found)
        if int(record.get("expires_at", 0)) < now or not record.get("principal"):
            return None
        return str(record["principal"])
