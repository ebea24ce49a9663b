-- Several relays on one database (docs/operations.md, "Running several relays"). Each event's batch is written
-- during the writing relay's turn (a session advisory lock); every batch also counts up this one-row epoch, so a
-- relay that begins a turn knows whether another relay wrote since it last did, and reads again what it keeps in
-- memory.
CREATE TABLE write_epoch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    n bigint NOT NULL
);
INSERT INTO write_epoch (only_row, n) VALUES (true, 0);
