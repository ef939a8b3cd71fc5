use crate::global::Global;
use anyhow::Result;
use gradmatch_data::DatasetName;

#[derive(clap::Args)]
pub struct Args {
    /// Which dataset; all fetchable ones (MNIST, FashionMNIST) when omitted.
    #[arg(long)]
    dataset: Option<DatasetName>,
}

pub fn run(global: &Global, args: Args) -> Result<()> {
    let names = match args.dataset {
        Some(n) => vec![n],
        None => vec![DatasetName::Mnist, DatasetName::FashionMnist],
    };
    for name in names {
        let dir = gradmatch_data::fetch(name, &global.data_dir)?;
        let ds = gradmatch_data::load(name, &global.data_dir)?;
        println!("{name}: {} train / {} test images in {}", ds.train.len(), ds.test.len(), dir.display());
    }
    Ok(())
}
