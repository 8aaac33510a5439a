//! ElectrumX's hard-coded peers of each network (`coin.PEERS` in its `lib/coins.py`), as
//! real names (`host [s[PORT]] [t[PORT]] [pPRUNING]`): where peer discovery starts.

pub const BITCOIN_MAINNET: &[&str] = &[
    "electrum.vom-stausee.de s t",
    "electrum.hsmiths.com s t",
    "helicarrier.bauerj.eu s t",
    "electrum.hodlister.co s",
    "electrum3.hodlister.co s",
    "btc.usebsv.com s50006",
    "fortress.qtornado.com s443 t",
    "ecdsa.net s110 t",
    "e2.keff.org s t",
    "currentlane.lovebitco.in s t",
    "electrum.jochen-hoenicke.de s50005 t50003",
    "vps5.hsmiths.com s",
    "electrum.emzy.de s",
    "electrum1.cipig.net t10000 s20000",
    "ulrichard.ch s",
    "hodlers.beer s",
    "5.9.83.108 s",
    "v7gtzf7nua6hdmb2wtqaqioqmesdb4xrlly4zwr7bvayxv2bpg665pqd.onion t",
    "qeqgdlw2ezf3uabook2ny3lztjxxzeyyoqw2k7cempzvqpknbmevhmyd.onion t",
    "kciybn4d4vuqvobdl2kdp3r2rudqbqvsymqwg4jomzft6m6gaibaf6yd.onion t",
    "explorerzydxu5ecjrkwceayqybizmpjjznk5izmitf2modhcusuqlid.onion t110",
    "v7o2hkemnt677k3jxcbosmjjxw3p5khjyu7jwv7orfy6rwtkizbshwqd.onion t57001",
    "nf365b5sbzk5j4jreimskffwnfpka7qtamyni5doohoom3g63o5tldad.onion t",
];

pub const BITCOIN_TESTNET: &[&str] = &[
    "testnet.qtornado.com s t",
    "blackie.c3-soft.com s57006 t57005",
    "electrum.blockstream.info t60001 s60002",
    "testnet.aranguren.org s t",
    "v22019051929289916.bestsrv.de s50002 t50001",
    "explorerzydxu5ecjrkwceayqybizmpjjznk5izmitf2modhcusuqlid.onion t143",
    "gsw6sn27quwf6u3swgra6o7lrp5qau6kt3ymuyoxgkth6wntzm2bjwyd.onion s51002 t51001",
    "3tc6nefii2fwoc66dqvrwcyj64dd3r35ihgxvp4u37itsopns5fjtead.onion s50002 t50001",
];

pub const BITCOIN_TESTNET4: &[&str] = &[
    "blackie.c3-soft.com s57010 t57009",
    "testnet4-electrumx.wakiyamap.dev",
    "13.212.194.61 s60002 t50001",
    "v22019051929289916.bestsrv.de s60002 t60001",
    "fulcrum.theuplink.net s60002",
    "134.199.227.217 s50002 t50001",
    "bitcoin.stagemole.eu s5010 t5000",
    "testnet4.qtornado.com s51012 t51011",
    "gsw6sn27quwf6u3swgra6o7lrp5qau6kt3ymuyoxgkth6wntzm2bjwyd.onion s52002 t52001",
];

pub const BITCOIN_MUTINYNET: &[&str] = &["electrum.mutinynet.com t50001", "5.9.83.108 s51234"];

pub const LITECOIN_MAINNET: &[&str] = &[
    "ex.lug.gs s444",
    "electrum-ltc.bysh.me s t",
    "electrum-ltc.ddns.net s t",
    "electrum-ltc.wilv.in s t",
    "electrum.cryptomachine.com p1000 s t",
    "electrum.ltc.xurious.com s t",
];

pub const LITECOIN_TESTNET: &[&str] = &[
    "electrum-ltc.bysh.me s t",
    "electrum.ltc.xurious.com s t",
    "ipv6-only.electrum.random.re s t",
];

#[cfg(test)]
mod tests {
    use crate::coins::COINS;

    #[test]
    fn every_network_has_electrumx_s_list() {
        let count = |name: &str, net: &str| {
            COINS
                .iter()
                .find(|c| c.name == name && c.net == net)
                .map(|c| c.peers.len())
        };
        assert_eq!(count("Bitcoin", "mainnet"), Some(23));
        assert_eq!(count("Bitcoin", "testnet"), Some(8));
        assert_eq!(count("Bitcoin", "testnet4"), Some(9));
        assert_eq!(count("Bitcoin", "mutinynet"), Some(2));
        assert_eq!(count("Bitcoin", "regtest"), Some(0));
        assert_eq!(count("Litecoin", "mainnet"), Some(6));
        assert_eq!(count("Litecoin", "testnet"), Some(3));
    }
}
