"""All writes. Each service is one transaction that checks, saves and audits."""
