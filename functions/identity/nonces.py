"""Single use of request tokens: each `jti` is written once, conditionally, and remembered until it expires."""

from __future__ import annotations

from functions.core.dynamo import DynamoTable, is_conditional_failure, to_item


class NonceStore(DynamoTable):
    def use_once(self, nonce: str, expires_at: int, now: int) -> bool:
        """True the first time `nonce` is seen; False on every later call before it expires.

        DynamoDB's TTL deletes lazily (up to days later), so an expired record counts as absent.
        """
        try:
            self.client.put_item(
                TableName=self._table,
                Item=to_item({"nonce": nonce, "expires_at": expires_at}),
                ConditionExpression="attribute_not_exists(nonce) OR expires_at < :now",
                ExpressionAttributeValues=to_item({":now": now}),
            )
        except Exception as error:
            if is_conditional_failure(error):
                return False
            raise
        return True
