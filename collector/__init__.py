"""branchwatch collector (central): incidents, grading, runbooks, deadlines."""
