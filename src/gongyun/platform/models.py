"""Imports every room's table modules so ``Base.metadata`` knows all tables (tests, tooling)."""

import gongyun.alarms.models
import gongyun.apps.models
import gongyun.assets.models
import gongyun.idres.models
import gongyun.security.audit.chain
import gongyun.security.audit.tlog
import gongyun.security.classify.exports
import gongyun.security.classify.keyring
import gongyun.security.ids.store
import gongyun.security.models
import gongyun.telemetry.reports  # noqa: F401
