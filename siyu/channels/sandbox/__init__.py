"""The in-process ``sandbox`` channel: the same contract as WeCom and Matrix, for the
demo workspace, benchmarks and fast tests."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from siyu.channels.base import Capability, ChannelAdapter, Command, SendResult
from siyu.channels.models import SandboxDelivery

#: capability profiles a sandbox account can imitate (config {"imitate": "wecom"}), so a
#: test or demo can see how features degrade on a platform that cannot do everything
PROFILES: dict[str, frozenset[Capability]] = {
    "full": frozenset(Capability),
    "wecom": frozenset(
        {
            # the same set as the real WeCom adapter: a self-built app cannot message
            # customers or groups directly, remove members or delete messages
            Capability.SEND_WELCOME, Capability.MASS_MESSAGE_TASK, Capability.CREATE_CONTACT_CODE,
            Capability.CREATE_GROUP_CODE, Capability.SYNC_TAGS, Capability.TRANSFER_CUSTOMERS,
        }
    ),
}


class SandboxAdapter(ChannelAdapter):
    """Delivers by writing a :class:`SandboxDelivery` row. A repeated idempotency key is
    recognised (like a Matrix txnId) and answered with the first delivery."""

    kind = "sandbox"
    capabilities = PROFILES["full"]

    def __init__(self, account) -> None:  # type: ignore[no-untyped-def]
        super().__init__(account)
        profile = (account.config or {}).get("imitate", "full")
        self.capabilities = PROFILES.get(profile, PROFILES["full"])  # type: ignore[misc]

    def send(self, command: Command) -> SendResult:
        if (account_failure := (self.account.config or {}).get("fail_with")) is not None:
            return SendResult.failed(account_failure.get("code", "sandbox_error"), "configured failure", transient=account_failure.get("transient", False))
        try:
            with transaction.atomic():
                delivery = SandboxDelivery.objects.create(
                    workspace_id=self.account.workspace_id,
                    account=self.account,
                    idempotency_key=command.idempotency_key,
                    command=command.kind.value,
                    target=command.target,
                    payload=command.payload,
                )
        except IntegrityError:
            delivery = SandboxDelivery.objects.get(account=self.account, idempotency_key=command.idempotency_key)
        return SendResult.delivered(external_id=f"sbx-{delivery.pk}")
