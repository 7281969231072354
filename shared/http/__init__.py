"""HTTP pieces every process shares: errors, the body-size limit, metrics."""
