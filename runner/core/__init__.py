"""Pure deciding code on plain data: no docker, git or HTTP imports."""
