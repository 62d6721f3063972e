"""Pictures and text summaries of genotypes."""
