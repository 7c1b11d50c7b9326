"""The time zones a user may choose: the IANA zones this machine knows, less the ones that name no place.

``localtime`` is a link to the server's own zone (it changes with the host's configuration) and
``Factory`` is tzdata's placeholder ("-00", "local time zone must be set"); both are files under
/usr/share/zoneinfo, so zoneinfo lists and loads them.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def zone_names() -> tuple[str, ...]:
    """Every zone a user may choose, sorted."""
    return tuple(sorted(zoneinfo.available_timezones() - NOT_PLACES))


def get_zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone ``name``; ZoneInfoNotFoundError for an unknown name or one that names no place."""
    if name in NOT_PLACES:
        raise zoneinfo.ZoneInfoNotFoundError(name)
    return zoneinfo.ZoneInfo(name)
