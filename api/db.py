"""Flask-SQLAlchemy, bound to the service's tables: the engine from the app's configuration
and a session per app context. Services never see this object; they get a
:class:`privacy.storage.database.Database` built from it (see :func:`api.create_app`)."""
from __future__ import annotations

from flask_sqlalchemy import SQLAlchemy

from privacy.storage.models import Base

db = SQLAlchemy(metadata=Base.metadata)
