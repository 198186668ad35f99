"""Real sampler bugs re-created beside their fixes, and the generic checks that must catch them (``diffcheck zoo``).

``ENTRIES`` is the catalogue (``catalogue``), ``check_entry`` runs both forms of one entry
through the generic checks and ``zoo_table`` / ``format_table`` give the catch table.
"""

from .catalogue import ENTRIES, Entry, Variant, by_id
from .checks import CHECKS, check_entry, format_table, run_checks, zoo_table

__all__ = ["ENTRIES", "Entry", "Variant", "by_id", "CHECKS", "check_entry", "run_checks", "zoo_table", "format_table"]
