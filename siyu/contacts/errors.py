"""Error codes of the contacts domain."""

from __future__ import annotations

from siyu.core.errors import Conflict, NotFound, ValidationFailed


class UnknownTag(ValidationFailed):
    code = "unknown_tag"


class AmbiguousTag(ValidationFailed):
    code = "ambiguous_tag"


class ContactNotFound(NotFound):
    code = "contact_not_found"


class MergeRefused(Conflict):
    code = "merge_refused"


class InvalidProfileValue(ValidationFailed):
    code = "invalid_profile_value"
