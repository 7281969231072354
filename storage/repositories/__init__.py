"""One repository per aggregate: media (with its results), jobs, clusters. The only place with SQL writes;
routes and pipelines call these methods, each method one unit of work."""
