//! Beyond the defaults that every registered plug-in is checked with: multi-formation with a factor
//! that does not divide the side (the padded crops of IDC).

use gradmatch_parameterisations::MultiFormation;
use gradmatch_testkit::check_parameterisation;

#[test]
fn multi_formation_with_padded_crops_passes_the_kit() {
    check_parameterisation(&MultiFormation { factor: 3 });
}
