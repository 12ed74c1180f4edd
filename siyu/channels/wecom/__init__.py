"""The WeCom (企业微信) channel, self-built app mode (自建应用).

- :mod:`.crypto` — callback signature and AES (WXBizMsgCrypt semantics)
- :mod:`.events` — decrypted callback XML → :class:`~siyu.channels.base.InboundEvent`
- :mod:`.client` — the server API over httpx (token cache, retries, rate limits)
- :mod:`.adapter` — :class:`~siyu.channels.wecom.adapter.WeComAdapter`, what siyu may ask of WeCom
- :mod:`.views` — the callback endpoint ``/channels/wecom/<account_id>/callback``
- :mod:`.limits` — the documented platform limits, as data
- :mod:`.cli` — ``siyu channels add-wecom``

See ``docs/channels/wecom.md`` for the set-up in the WeCom admin console.
"""
