"""What a finished run means: collapse statistics per chain (summary), fixed points and cycles
(events), divergence of replicas (divergence). Reads run directories; above the metrics, below
the reports."""
