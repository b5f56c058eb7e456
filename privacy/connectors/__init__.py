"""Connected systems: one small interface (``base.Connector``), one module per system type,
and an explicit registry (``registry.CONNECTOR_CLASSES``) from the policy file's ``type``."""
