"""Scale-out on a Dask cluster (docs/scale_out.md): the pure core applied per wallet partition."""
