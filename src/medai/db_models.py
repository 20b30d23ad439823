"""Imports every module that defines tables, so :func:`medai.db.get_engine` creates the whole schema."""

import medai.monitoring.store  # noqa: F401
import medai.privacy.audit  # noqa: F401
import medai.registry.tables  # noqa: F401
import medai.serving.fhir  # noqa: F401
import medai.serving.jobs  # noqa: F401
import medai.serving.keys  # noqa: F401
import medai.web.sessions  # noqa: F401
