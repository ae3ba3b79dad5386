"""`fem report`: tables and plots of one or more run folders (collect, tables, plots)."""
