"""One router per resource: predictions, health (health + readiness), model, metrics."""
