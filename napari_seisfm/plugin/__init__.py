"""The napari plugin: npe2 reader, writer, sample data and dock widgets, thin glue over the headless core."""
