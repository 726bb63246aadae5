"""Device identity: the platform's CA, enrolment, revocation and the broker's mutual-TLS configuration."""
