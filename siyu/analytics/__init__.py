"""Analytics (数据分析): repurchase models and the sales formula as typed query runners.

The numeric core (``transactions``, ``bgnbd``, ``gamma_gamma``, ``rfm``, ``sales``) is
plain numpy/scipy and knows nothing of Django; ``sources`` reads workspace data (orders
and the contact timeline) and ``runners`` turn a typed query into a typed result for the
API, the console and the CLI alike.
"""
