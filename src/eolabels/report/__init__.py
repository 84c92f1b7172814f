"""Tables, figures and the summary report built from the workflow's outputs."""
