"""Error codes of the commerce domain (orders, coupons, points, memberships).

Raised through the core error classes (``ValidationFailed``, ``NotFound``, ``Conflict``)
so that the API, CLI and console show them uniformly; the code is one of these values.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # catalogue
    PRODUCT_NOT_FOUND = "product_not_found"
    SKU_EXISTS = "sku_exists"
    CATEGORY_NOT_FOUND = "category_not_found"
    INVALID_PRODUCT = "invalid_product"
    # orders
    ORDER_NOT_FOUND = "order_not_found"
    INVALID_ORDER = "invalid_order"
    INVALID_AMOUNT = "invalid_amount"
    NAIVE_DATETIME = "naive_datetime"
    AMOUNT_MISMATCH = "amount_mismatch"
    DISCOUNT_EXCEEDS_GROSS = "discount_exceeds_gross"
    STATUS_MISMATCH = "status_mismatch"
    ORDER_CANCELLED = "order_cancelled"
    REFUND_EXCEEDS_PAID = "refund_exceeds_paid"
    REFUND_DECREASE = "refund_decrease"
    CONTACT_NOT_FOUND = "contact_not_found"
    CONTACT_AMBIGUOUS = "contact_ambiguous"
    UNKNOWN_STAFF = "unknown_staff"
    UNKNOWN_GROUP = "unknown_group"
    # coupons
    COUPON_NOT_FOUND = "coupon_not_found"
    COUPON_EXPIRED = "coupon_expired"
    COUPON_NOT_YET_VALID = "coupon_not_yet_valid"
    COUPON_USED = "coupon_used"
    COUPON_VOID = "coupon_void"
    COUPON_NOT_OWNER = "coupon_not_owner"
    BELOW_THRESHOLD = "below_threshold"
    OUT_OF_STOCK = "out_of_stock"
    PER_CONTACT_LIMIT = "per_contact_limit"
    TEMPLATE_INACTIVE = "template_inactive"
    INVALID_TEMPLATE = "invalid_template"
    # promotions
    INVALID_PROMOTION = "invalid_promotion"
    # points
    INSUFFICIENT_POINTS = "insufficient_points"
    INVALID_POINTS = "invalid_points"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    # membership
    INVALID_TIER = "invalid_tier"
    TIER_NOT_FOUND = "tier_not_found"
    ALREADY_MEMBER = "already_member"
    NOT_RENEWABLE = "not_renewable"
    # lifecycle and settings
    UNKNOWN_STAGE = "unknown_stage"
    INVALID_SETTINGS = "invalid_settings"
    # webhook
    INVALID_SIGNATURE = "invalid_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    INVALID_JSON = "invalid_json"
