//! One module per streamer dialect: each parses its streamer's request into a
//! `PlayRequest` and renders the `Decision` as that streamer expects. No
//! policy and no SQL here.

pub mod decide;

use actix_web::web;

pub fn routes(config: &mut web::ServiceConfig) {
    config.service(web::scope("/hook").route("/decide", web::post().to(decide::handle)));
}
