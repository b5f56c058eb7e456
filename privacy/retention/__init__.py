"""Storage limitation and minimisation (GDPR Art. 5(1)(c),(e)): each purpose's retention rule
of the policy file enforced by a sweep (:class:`privacy.retention.sweep.RetentionService`)."""
