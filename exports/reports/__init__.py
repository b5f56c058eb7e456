"""Officers' reports: retention (figures from COUNT/GROUP BY queries) and the Art. 30 record."""
