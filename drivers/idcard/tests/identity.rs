use chrono::NaiveDate;
use kiosk_idcard::identity::{decode_appended_address, encode_appended_address, ethnic_name};
use kiosk_idcard::{CardType, Identity, IdentityError, Sex, Validity};

/// A text block built by hand: spaces everywhere, then each `(offset, text)`
/// written as UCS-2 LE. Independent of the crate's layout tables on purpose.
fn block(fields: &[(usize, &str)]) -> Vec<u8> {
    let mut block: Vec<u8> = [0x20, 0x00].repeat(128);
    for (offset, text) in fields {
        for (i, unit) in text.encode_utf16().enumerate() {
            block[offset + 2 * i..offset + 2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
    }
    block
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn resident_block() -> Vec<u8> {
    block(&[
        (0, "张三"),
        (30, "2"),
        (32, "01"),
        (36, "19491231"),
        (52, "北京市朝阳区示例路1号"),
        (122, "11010519491231002X"),
        (158, "北京市公安局朝阳分局"),
        (188, "20200101"),
        (204, "20400101"),
    ])
}

#[test]
fn resident_card() {
    let identity = Identity::decode(&resident_block()).unwrap();
    assert_eq!(identity, Identity::sample(CardType::Resident));
    assert_eq!(identity.card_type, CardType::Resident);
    assert_eq!(identity.name, "张三");
    assert_eq!(identity.sex, Sex::Female);
    assert_eq!(identity.ethnic_code.as_deref(), Some("01"));
    assert_eq!(identity.ethnic_name(), Some("汉"));
    assert_eq!(identity.birth_date, "19491231");
    assert_eq!(identity.address.as_deref(), Some("北京市朝阳区示例路1号"));
    assert_eq!(identity.number, "11010519491231002X");
    assert_eq!(identity.issuer, "北京市公安局朝阳分局");
    assert_eq!(identity.valid_from, date(2020, 1, 1));
    assert_eq!(identity.valid_until, Validity::Until(date(2040, 1, 1)));
    assert_eq!(
        (&identity.english_name, &identity.nationality),
        (&None, &None)
    );
    assert_eq!(
        (&identity.pass_number, &identity.issue_count),
        (&None, &None)
    );
    // And back to the same bytes.
    assert_eq!(
        Identity::sample(CardType::Resident).encode().to_vec(),
        resident_block()
    );
}

#[test]
fn resident_card_bytes_are_ucs2_le() {
    let text = Identity::sample(CardType::Resident).encode();
    // 张 U+5F20, 三 U+4E09, then space padding.
    assert_eq!(&text[..6], &[0x20, 0x5F, 0x09, 0x4E, 0x20, 0x00]);
    // Sex `2` at 30, type flag (space) at 248.
    assert_eq!(&text[30..32], &[0x32, 0x00]);
    assert_eq!(&text[248..250], &[0x20, 0x00]);
}

#[test]
fn resident_card_with_nul_flag_and_nul_padding() {
    let mut text = resident_block();
    text[248..256].fill(0);
    // A name padded with NULs instead of spaces.
    text[4..30].fill(0);
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity.card_type, CardType::Resident);
    assert_eq!(identity.name, "张三");
}

#[test]
fn resident_card_long_term() {
    let mut fields = vec![(204, "长期")];
    fields.splice(0..0, [(0, "李四"), (30, "1"), (32, "04"), (36, "19500101")]);
    fields.extend([
        (52, "西藏自治区拉萨市示例路"),
        (122, "540102195001010012"),
        (158, "拉萨市公安局"),
    ]);
    fields.push((188, "20100101"));
    let identity = Identity::decode(&block(&fields)).unwrap();
    assert_eq!(identity.valid_until, Validity::LongTerm);
    assert_eq!(identity.sex, Sex::Male);
    assert_eq!(identity.ethnic_name(), Some("藏"));
    assert!(!identity.is_expired(date(2099, 1, 1)));
}

#[test]
fn foreign_permanent_2017() {
    let text = block(&[
        (0, "DOE, JANE"),
        (120, "2"),
        (122, "CAN310081010112"),
        (152, "CAN"),
        (158, "多伊"),
        (188, "20170601"),
        (204, "20270601"),
        (220, "19810101"),
        (236, "01"),
        (240, "3100"),
        (248, "I"),
    ]);
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity, Identity::sample(CardType::ForeignPermanent2017));
    assert_eq!(identity.card_type, CardType::ForeignPermanent2017);
    assert_eq!(identity.english_name.as_deref(), Some("DOE, JANE"));
    assert_eq!(identity.name, "多伊");
    assert_eq!(identity.sex, Sex::Female);
    assert_eq!(identity.number, "CAN310081010112");
    assert_eq!(identity.nationality.as_deref(), Some("CAN"));
    assert_eq!(identity.birth_date, "19810101");
    assert_eq!(identity.valid_from, date(2017, 6, 1));
    assert_eq!(identity.valid_until, Validity::Until(date(2027, 6, 1)));
    assert_eq!(identity.issue_count.as_deref(), Some("01"));
    assert_eq!(identity.issuer, "3100");
    assert_eq!((&identity.ethnic_code, &identity.address), (&None, &None));
    assert_eq!(
        Identity::sample(CardType::ForeignPermanent2017)
            .encode()
            .to_vec(),
        text
    );
}

#[test]
fn foreign_permanent_2017_without_chinese_name() {
    let text = block(&[
        (0, "SMITH, JOHN ALEXANDER"),
        (120, "1"),
        (122, "USA110079010101"),
        (152, "USA"),
        (188, "20180101"),
        (204, "20280101"),
        (220, "19790101"),
        (236, "01"),
        (240, "1100"),
        (248, "I"),
    ]);
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity.name, "");
    assert_eq!(
        identity.english_name.as_deref(),
        Some("SMITH, JOHN ALEXANDER")
    );
}

/// The 2023 card as public reader code lays out its text block (the
/// `t_idforeigner2023` struct of Johann356/readinfo, the yzfuture SDK's
/// `ForeignerInfoNew`): like the resident card, with the English name in
/// two pieces. Offsets from that table, not from this crate.
fn foreign_2023_block(english_head: &str, english_tail: &str) -> Vec<u8> {
    block(&[
        (0, "多伊"),
        (30, "1"),
        (32, "02"),
        (36, "19800101"),
        (52, english_head),
        (122, "931840198001011239"),
        (188, "20231201"),
        (204, "20331201"),
        (220, english_tail),
        (242, "USA"),
        (248, "Y"),
    ])
}

#[test]
fn foreign_permanent_2023() {
    let text = foreign_2023_block("DOE, JOHN", "");
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity, Identity::sample(CardType::ForeignPermanent2023));
    assert_eq!(identity.card_type, CardType::ForeignPermanent2023);
    assert_eq!(identity.card_type.corebank_id_type(), "foreign_permanent");
    assert_eq!(identity.english_name.as_deref(), Some("DOE, JOHN"));
    assert_eq!(identity.number, "931840198001011239");
    assert_eq!(identity.nationality.as_deref(), Some("USA"));
    assert_eq!(identity.name, "多伊");
    assert_eq!(identity.sex, Sex::Male);
    assert_eq!(identity.valid_from, date(2023, 12, 1));
    assert_eq!(identity.valid_until, Validity::Until(date(2033, 12, 1)));
    assert_eq!(identity.birth_date, "19800101");
    // The renewal count.
    assert_eq!(identity.issue_count.as_deref(), Some("02"));
    assert_eq!(identity.issuer, "");
    assert_eq!(
        Identity::sample(CardType::ForeignPermanent2023)
            .encode()
            .to_vec(),
        text
    );
}

/// A 46-character English name: characters 1-35 at byte 52, 36-46 at 220.
#[test]
fn foreign_permanent_2023_english_name_of_46_characters() {
    let name = "WOLFESCHLEGELSTEINHAUSEN, HUBERT BLAINE ALEXAN";
    assert_eq!(name.len(), 46);
    let text = foreign_2023_block(&name[..35], &name[35..]);
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity.english_name.as_deref(), Some(name));
    assert_eq!(identity.encode().to_vec(), text);
    // A space at the seam belongs to the name.
    let spaced = "ABCDEFGHIJKLMNOPQRSTUVWXYZ ABCDEFGH IJKL";
    let text = foreign_2023_block(&spaced[..35], &spaced[35..]);
    assert_eq!(
        Identity::decode(&text).unwrap().english_name.as_deref(),
        Some(spaced)
    );
}

#[test]
fn hk_mo_tw_residence_permit() {
    let text = block(&[
        (0, "陈大文"),
        (30, "1"),
        (36, "19900101"),
        (52, "广东省深圳市福田区示例路2号"),
        (122, "810000199001011230"),
        (158, "深圳市公安局福田分局"),
        (188, "20210315"),
        (204, "20260315"),
        (220, "H01234567"),
        (238, "01"),
        (248, "J"),
    ]);
    let identity = Identity::decode(&text).unwrap();
    assert_eq!(identity, Identity::sample(CardType::HkMoTwResidence));
    assert_eq!(identity.card_type, CardType::HkMoTwResidence);
    assert_eq!(identity.name, "陈大文");
    assert_eq!(identity.ethnic_code, None);
    assert_eq!(identity.number, "810000199001011230");
    assert_eq!(identity.pass_number.as_deref(), Some("H01234567"));
    assert_eq!(identity.issue_count.as_deref(), Some("01"));
    assert_eq!(
        identity.address.as_deref(),
        Some("广东省深圳市福田区示例路2号")
    );
    assert_eq!(identity.valid_until, Validity::Until(date(2026, 3, 15)));
    assert!(identity.is_expired(date(2026, 3, 16)));
    assert!(!identity.is_expired(date(2026, 3, 15)));
    assert_eq!(
        Identity::sample(CardType::HkMoTwResidence)
            .encode()
            .to_vec(),
        text
    );
}

#[test]
fn residence_permit_ignores_the_reserved_ethnic_field() {
    let mut text = Identity::sample(CardType::HkMoTwResidence).encode();
    text[32..36].copy_from_slice(&[0x30, 0x00, 0x31, 0x00]);
    assert_eq!(Identity::decode(&text).unwrap().ethnic_code, None);
}

#[test]
fn every_sample_decodes_to_itself() {
    for card_type in CardType::ALL {
        let sample = Identity::sample(card_type);
        assert_eq!(sample.card_type, card_type);
        assert_eq!(Identity::decode(&sample.encode()).unwrap(), sample);
        if card_type != CardType::ForeignPermanent2017 {
            kiosk_idcard::idnumber::validate18(&sample.number).unwrap();
        }
    }
}

#[test]
fn unsupported_card_types() {
    let mut text = resident_block();
    text[248..250].copy_from_slice(&[b'A', 0]);
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::UnsupportedCardType('A'))
    );
    text[248..250].copy_from_slice(&[0x00, 0xD8]); // lone surrogate
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::UnsupportedCardType('\u{FFFD}'))
    );
    assert_eq!(
        IdentityError::UnsupportedCardType('A').to_string(),
        "unsupported card type flag 'A'"
    );
}

#[test]
fn wrong_block_length() {
    assert_eq!(
        Identity::decode(&[0x20; 255]),
        Err(IdentityError::Length(255))
    );
    assert_eq!(Identity::decode(&[]), Err(IdentityError::Length(0)));
    assert_eq!(
        Identity::decode(&[0x20; 1280]),
        Err(IdentityError::Length(1280))
    );
}

#[test]
fn invalid_dates() {
    let cases = [
        (188, "20201301", "valid_from"),
        (204, "2040010X", "valid_until"),
        (204, "长", "valid_until"),
        (36, "19490230", "birth_date"),
        (36, "1949123", "birth_date"),
    ];
    for (offset, value, field) in cases {
        let mut text = resident_block();
        text[offset..offset + 16].copy_from_slice(&[0x20, 0x00].repeat(8));
        for (i, unit) in value.encode_utf16().enumerate() {
            text[offset + 2 * i..offset + 2 * i + 2].copy_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(
            Identity::decode(&text),
            Err(IdentityError::Date { field }),
            "{value}"
        );
    }
}

#[test]
fn missing_fields() {
    let mut text = resident_block();
    text[122..158].copy_from_slice(&[0x20, 0x00].repeat(18));
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::Missing { field: "number" })
    );

    let mut text = resident_block();
    text[0..30].fill(0);
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::Missing { field: "name" })
    );

    let mut text = resident_block();
    text[188..204].copy_from_slice(&[0x20, 0x00].repeat(8));
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::Missing {
            field: "valid_from"
        })
    );
}

#[test]
fn bad_ucs2_is_an_encoding_error() {
    let mut text = resident_block();
    text[0..2].copy_from_slice(&[0x00, 0xDC]); // lone low surrogate
    assert_eq!(
        Identity::decode(&text),
        Err(IdentityError::Encoding { field: "name" })
    );
}

#[test]
fn characters_outside_the_bmp_survive() {
    let mut identity = Identity::sample(CardType::Resident);
    identity.name = "𠮷野".to_string();
    assert_eq!(Identity::decode(&identity.encode()).unwrap().name, "𠮷野");
}

#[test]
fn encode_cuts_values_too_long_for_their_field() {
    let mut identity = Identity::sample(CardType::Resident);
    identity.name = "一二三四五六七八九十一二三四五六七".to_string(); // 17 chars, room for 15
    identity.issuer = format!("{}𠮷", "十".repeat(14)); // the pair does not fit in the last unit
    let decoded = Identity::decode(&identity.encode()).unwrap();
    assert_eq!(decoded.name, "一二三四五六七八九十一二三四五");
    assert_eq!(decoded.issuer, "十".repeat(14));
}

#[test]
fn sex_codes() {
    for (code, sex) in [
        ("1", Sex::Male),
        ("2", Sex::Female),
        ("0", Sex::Unknown),
        ("9", Sex::Unknown),
    ] {
        let mut text = resident_block();
        text[30..32].copy_from_slice(&[code.as_bytes()[0], 0]);
        assert_eq!(Identity::decode(&text).unwrap().sex, sex, "{code}");
    }
}

#[test]
fn debug_masks_personal_fields() {
    for card_type in CardType::ALL {
        let identity = Identity::sample(card_type);
        let debug = format!("{identity:?}");
        let mut secrets = vec![identity.number.as_str(), identity.birth_date.as_str()];
        if !identity.name.is_empty() {
            secrets.push(&identity.name);
        }
        secrets.extend(identity.english_name.as_deref());
        secrets.extend(identity.address.as_deref());
        secrets.extend(identity.pass_number.as_deref());
        if identity.nationality.is_some() {
            // Not `contains(nationality)`: a 2017 number starts with it and
            // rule S1 shows the number's first three characters.
            assert!(debug.contains("nationality: Some(\"***\")"), "{debug}");
        }
        for secret in secrets {
            assert!(!debug.contains(secret), "{debug} shows {secret}");
        }
    }
    let debug = format!("{:?}", Identity::sample(CardType::Resident));
    assert!(debug.contains("\"张*\""), "{debug}");
    assert!(debug.contains("\"110***********002X\""), "{debug}");
    assert!(debug.contains("\"****-**-**\""), "{debug}");
    assert!(debug.contains("Resident"), "{debug}");
}

#[test]
fn ethnic_groups() {
    let names = [
        "汉",
        "蒙古",
        "回",
        "藏",
        "维吾尔",
        "苗",
        "彝",
        "壮",
        "布依",
        "朝鲜",
        "满",
        "侗",
        "瑶",
        "白",
        "土家",
        "哈尼",
        "哈萨克",
        "傣",
        "黎",
        "傈僳",
        "佤",
        "畲",
        "高山",
        "拉祜",
        "水",
        "东乡",
        "纳西",
        "景颇",
        "柯尔克孜",
        "土",
        "达斡尔",
        "仫佬",
        "羌",
        "布朗",
        "撒拉",
        "毛南",
        "仡佬",
        "锡伯",
        "阿昌",
        "普米",
        "塔吉克",
        "怒",
        "乌孜别克",
        "俄罗斯",
        "鄂温克",
        "德昂",
        "保安",
        "裕固",
        "京",
        "塔塔尔",
        "独龙",
        "鄂伦春",
        "赫哲",
        "门巴",
        "珞巴",
        "基诺",
    ];
    for (i, name) in names.iter().enumerate() {
        assert_eq!(ethnic_name(&format!("{:02}", i + 1)), Some(*name));
    }
    assert_eq!(ethnic_name("97"), Some("其他"));
    assert_eq!(ethnic_name("98"), Some("外国血统中国籍人士"));
    for code in ["00", "57", "96", "99", "1", "001", "", "ab", "０１"] {
        assert_eq!(ethnic_name(code), None, "{code}");
    }
}

#[test]
fn appended_address() {
    assert_eq!(decode_appended_address(&[]).unwrap(), "");
    assert_eq!(
        decode_appended_address(&[0x20, 0x00].repeat(35)).unwrap(),
        ""
    );
    assert_eq!(decode_appended_address(&[0; 70]).unwrap(), "");
    let block = encode_appended_address("上海市浦东新区示例路8号");
    assert_eq!(block.len(), 70);
    assert_eq!(&block[..4], &[0x0A, 0x4E, 0x77, 0x6D]); // 上 U+4E0A, 海 U+6D77
    assert_eq!(
        decode_appended_address(&block).unwrap(),
        "上海市浦东新区示例路8号"
    );
    assert_eq!(
        decode_appended_address(&[0x20; 69]),
        Err(IdentityError::Encoding {
            field: "appended_address"
        })
    );
}

/// Found by `cargo xtask fuzz text_block`
/// (`fuzz/regressions/text_block/crash-306a0e08…`): a 2023 foreign card
/// block that decodes must survive an encode/decode round trip.
#[test]
fn foreign_2023_block_from_the_fuzzer_round_trips() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/regressions/text_block/crash-306a0e0835c0c5319e68621f9efe5b238ae357f8"
    ))
    .unwrap();
    let identity = Identity::decode(&data).expect("the block decodes");
    assert_eq!(Identity::decode(&identity.encode()), Ok(identity));
}
