"""What leaves the service as a file: access packages and retention / Art. 30 reports.

Filled by the data-subject request and retention issues; nothing here imports ``api``.
"""
