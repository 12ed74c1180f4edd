"""The demo workspace (`siyu demo`): a made-up fashion retail brand, 衣澜 Yilan 女装, with
stores, staff, contacts, tags, groups and 30 days of timeline activity on the in-process
``sandbox`` channel. Entry point: :func:`siyu.demo.seed.seed_demo`."""
