// NIST CAVP gcmEncryptExtIV256.rsp vectors (96-bit IV, with plaintext and AAD), as listed in the
// aes-gcm 0.10.3 crate's tests/aes256gcm.rs.
[
    Kat {
        key: "92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b",
        nonce: "ac93a1a6145299bde902f21a",
        aad: "1e0889016f67601c8ebea4943bc23ad6",
        pt: "2d71bcfa914e4ac045b2aa60955fad24",
        ct: "8995ae2e6df3dbf96fac7b7137bae67f",
        tag: "eca5aa77d51d4a0a14d9c51e1da474ab",
    },
    Kat {
        key: "37ccdba1d929d6436c16bba5b5ff34deec88ed7df3d15d0f4ddf80c0c731ee1f",
        nonce: "5c1b21c8998ed6299006d3f9",
        aad: "22ed235946235a85a45bc5fad7140bfa",
        pt: "ad4260e3cdc76bcc10c7b2c06b80b3be948258e5ef20c508a81f51e96a518388",
        ct: "3b335f8b08d33ccdcad228a74700f1007542a4d1e7fc1ebe3f447fe71af29816",
        tag: "1fbf49cc46f458bf6e88f6370975e6d4",
    },
    Kat {
        key: "6be7f4d18ff0fbdd9b3b3cacaba4629a0c617387079add62f6ce1584b33faad1",
        nonce: "fda568c9cb13d9c176bcef03",
        aad: "11ebeb97dd4a9925c1fbe2b9af77392058d2d971e42db15da39f090d7bc132573c34bf7d92a2d72dc66ee6840c3ff07985b8976ee8d8f36bf47ae330b899fdc60652dd5a23c45f3680f11951f019e0697c8acfcaa95f01b9c7dd",
        pt: "4df668e99d5068604a48bcca5baa8245435928558a83d68d7b0b081861224e9bd39ea8f2d55a635949e66c6f6a7ff5cc34dd94",
        ct: "488b40ad594e1845ccdd9e9467fc5e1afbbfde34e57d45bfcd30b61cc326d57fe8e3f31a39cdebf00f60bbd2c3cdf69f756eff",
        tag: "3bf3fbab9b48486fd08a5552604df639",
    },
]
