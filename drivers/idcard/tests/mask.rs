//! Rule S1: de-identified display.

use kiosk_idcard::mask::MaskPolicy;

#[test]
fn rule_s1_defaults() {
    let mask = MaskPolicy::default();
    assert_eq!(mask.id_number("110101199001011234"), "110***********1234");
    assert_eq!(mask.id_number("11010519491231002X"), "110***********002X");
    assert_eq!(mask.phone("13812345678"), "138****5678");
    assert_eq!(mask.name("张三"), "张*");
    assert_eq!(mask.name("欧阳娜"), "欧**");
    assert_eq!(mask.name("欧阳娜娜"), "欧***");
    assert_eq!(mask.name("DOE, JANE"), "D********");
    assert_eq!(mask.address("北京市朝阳区示例路1号"), "***");
    assert_eq!(mask.birth_date(), "****-**-**");
}

#[test]
fn rule_s1_short_values_are_fully_masked() {
    let mask = MaskPolicy::default();
    assert_eq!(mask.name("张"), "*");
    assert_eq!(mask.name(""), "");
    assert_eq!(mask.id_number("1234567"), "*******");
    assert_eq!(mask.id_number("12345678"), "123*5678");
    assert_eq!(mask.phone("1381234"), "*******");
    assert_eq!(mask.phone(""), "");
}

#[test]
fn rule_s1_masks_characters_not_bytes() {
    let mask = MaskPolicy::default();
    assert_eq!(mask.id_number("１２３４５６７８"), "１２３*５６７８");
    assert_eq!(mask.name("𠮷野家"), "𠮷**");
}

#[test]
fn rule_s1_policy_is_configurable() {
    let mask = MaskPolicy {
        id_keep_head: 6,
        id_keep_tail: 0,
        phone_keep_head: 0,
        phone_keep_tail: 4,
        name_keep_head: 0,
    };
    assert_eq!(mask.id_number("110101199001011234"), "110101************");
    assert_eq!(mask.phone("13812345678"), "*******5678");
    assert_eq!(mask.name("张三"), "**");
    let huge = MaskPolicy {
        id_keep_head: usize::MAX,
        id_keep_tail: usize::MAX,
        ..MaskPolicy::default()
    };
    assert_eq!(huge.id_number("110101199001011234"), "*".repeat(18));
}
