"""Country names as JHU CSSE and the course file write them -> the two-letter codes of pygal's world
map. Names the map cannot place (small island states it does not draw, Kosovo, cruise ships, the
Olympics) come back as None, so the report can list them."""

from __future__ import annotations

ALIASES = {
    "US": "us",
    "Korea, South": "kr",
    "Korea South": "kr",
    "Korea, North": "kp",
    "Taiwan*": "tw",
    "Taiwan": "tw",
    "Burma": "mm",
    "Congo (Kinshasa)": "cd",
    "Congo (Brazzaville)": "cg",
    "Holy See": "va",
    "Bolivia": "bo",
    "Brunei": "bn",
    "Cabo Verde": "cv",
    "Czechia": "cz",
    "Eswatini": "sz",
    "Iran": "ir",
    "Laos": "la",
    "Libya": "ly",
    "Moldova": "md",
    "North Macedonia": "mk",
    "Russia": "ru",
    "Syria": "sy",
    "Tanzania": "tz",
    "Venezuela": "ve",
    "Vietnam": "vn",
    "West Bank and Gaza": "ps",
    "Cote d'Ivoire": "ci",
}


def map_codes(names) -> dict[str, str | None]:
    """name -> pygal world-map code, or None when the map has no such country."""
    from pygal_maps_world.i18n import COUNTRIES

    by_name = {v.lower(): k for k, v in COUNTRIES.items()}
    return {n: ALIASES.get(n) or by_name.get(str(n).strip().lower()) for n in names}
