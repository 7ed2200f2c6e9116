"""Who may do what in the record: the one policy, its application to requests, the patient's control over it (consents, blocks, emergency) and its history."""
