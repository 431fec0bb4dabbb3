//! Generates the model module (`EMBER_MODEL`/`EMBER_INPUTS`, or the committed digits model): see
//! `ember-board-build`.

fn main() -> ember_board_build::Result<()> {
    ember_board_build::model()
}
