"""One route module per page group: jobs, job (with its actions), run, fleet."""
