"""Checks: what rtqa judges on a plan (lesions and BED, organs at risk, plan integrity,
protocol rules), each reading from one plan context."""
