"""Imports every room's table modules so ``Base.metadata`` knows all tables."""

import gongyun.security.audit.chain  # noqa: F401
import gongyun.security.models  # noqa: F401
import gongyun.idres.models  # noqa: F401
import gongyun.assets.models  # noqa: F401
