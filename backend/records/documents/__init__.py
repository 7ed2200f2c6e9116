"""Documents of the record: deposit, storage, listing, reading, viewing."""
