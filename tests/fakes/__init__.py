"""In-memory fakes of the pipeline's ports (dramatiq's stub broker idea): no sockets, milliseconds."""
